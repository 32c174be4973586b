"""Clinval's study core: storage, importers, instruments, assignment, audit. Never imports streamlit."""

import logging

# A library logs (the server log shows details such as paths); it never prints on its own.
logging.getLogger(__name__).addHandler(logging.NullHandler())
