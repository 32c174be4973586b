"""The services pages and CLIs call: one module per job a person does.

- ``studies``: create a study, read it, list the studies one may see;
- ``content``: cases, arms and answers, imported from files or frames;
- ``instrument_library``: the instrument library and the instruments a study uses;
- ``people``: sign-in, people and their roles;
- ``tokens``: personal access tokens, with which a person acts at the command line;
- ``design``: the protocol, its lock, and the assignment of raters to cases;
- ``lifecycle``: open rating, close it, unblind;
- ``rating``: a rater's queue and their submissions;
- ``monitoring``: progress and counts for the coordinator;
- ``exports``: the ratings in long format;
- ``analyses``: the one place where ``study`` calls the ``analysis`` library.

Every public function takes the ``Store``, then the ``Caller`` (``study.access``), then the study
where it acts on one, and checks the caller's permission first (``@guarded``). Every change runs
in one transaction together with its audit event, so a failure leaves nothing half-written and
nothing unaudited. Failures a person can act on raise ``StudyError`` subclasses.

Lifecycle (``studies.status``): ``draft`` -> ``locked`` (``design.lock_protocol``) -> ``rating``
(``lifecycle.start_rating``) -> ``closed`` (``lifecycle.close_rating``) -> ``unblinded``
(``lifecycle.unblind``). Cases, arms, answers and instruments change only in ``draft``; ratings
are accepted only in ``rating``.
"""
