"""The analysis command line on files as statisticians get them: a margin of 0
(superiority), a value that is already test - reference (one-sample t, bootstrap, mixed model),
``--by`` per item, negative scale values as written, ignored options refused, ``describe``.
Every statistic is checked against another package or a closed form, cited where it is used."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import pigeonhole_by_loop
from scipy import stats

from analysis.cli import main
from analysis.noninferiority import mean_difference_one_sample

CASES, RATERS = 12, 5


def comparison_frame(seed: int = 7) -> pl.DataFrame:
    """A balanced -2..+2 comparison study, every rater scoring every case on three items; the
    test side slightly better, with case and rater effects (a ClinSumm-like design)."""
    rng = np.random.default_rng(seed)
    rows = []
    for item, shift in (("completeness", 0.6), ("correctness", 0.0), ("conciseness", -0.3)):
        case_effect = rng.normal(0, 0.5, CASES)
        rater_effect = rng.normal(0, 0.4, RATERS)
        for c in range(CASES):
            for r in range(RATERS):
                raw = shift + case_effect[c] + rater_effect[r] + rng.normal(0, 0.7)
                rows.append((f"q{c:02d}", f"reader{r}", item, int(np.clip(np.rint(raw), -2, 2))))
    return pl.DataFrame(rows, schema=["case", "rater", "item", "value"], orient="row")


@pytest.fixture
def comparisons(tmp_path: Path) -> Path:
    path = tmp_path / "comparisons.csv"
    comparison_frame().write_csv(path)
    return path


def call(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def rows_of(*args: object) -> list[dict]:
    code, out, err = call(*args, "--format", "json")
    assert code == 0, err
    return json.loads(out)["results"]


def case_means(frame: pl.DataFrame) -> np.ndarray:
    return (
        frame.group_by("case", maintain_order=True).agg(pl.col("value").mean())["value"].to_numpy()
    )


# --- one sample: the value is already test - reference -----------------------------------------


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_one_sample_t_matches_scipy(margin: float) -> None:
    # Another package: scipy.stats.ttest_1samp of the per-case means against -margin
    # (alternative "greater": H1 delta > -margin) and scipy.stats.t.interval at 95%; 1e-12.
    frame = comparison_frame().filter(pl.col("item") == "completeness")
    d = case_means(frame)
    expected = stats.ttest_1samp(d, -margin, alternative="greater")
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    row = mean_difference_one_sample(frame, margin=margin, method="t").row(0, named=True)
    assert row["estimate"] == pytest.approx(d.mean(), abs=1e-12)
    assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert (row["n_units"], row["n_values"]) == (CASES, CASES * RATERS)
    assert row["method"].startswith("one-sample t on a value that is already test - reference")
    if margin == 0:
        assert "superiority test" in row["h1"]
        assert row["conclusion"].startswith("Superiority")


def test_one_sample_mixed_model_matches_the_balanced_anova_closed_form() -> None:
    # Closed form: in a balanced crossed design (every rater rates every case once) the REML
    # estimates of the variance components equal the ANOVA (expected mean squares) estimates
    # when these are positive (Searle, Casella & McCulloch 1992, Variance Components, ch. 4 and
    # 6), so the intercept-only model's estimate is the grand mean and its variance is
    # (MS_case + MS_rater - MS_error) / (cases * raters). Tolerance 1e-4 (the optimiser).
    frame = comparison_frame().filter(pl.col("item") == "completeness")
    y = frame.sort("case", "rater")["value"].to_numpy().reshape(CASES, RATERS).astype(float)
    grand = y.mean()
    ms_case = RATERS * ((y.mean(axis=1) - grand) ** 2).sum() / (CASES - 1)
    ms_rater = CASES * ((y.mean(axis=0) - grand) ** 2).sum() / (RATERS - 1)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    ms_error = (resid**2).sum() / ((CASES - 1) * (RATERS - 1))
    assert ms_case > ms_error and ms_rater > ms_error  # both components positive: REML = ANOVA
    se = np.sqrt((ms_case + ms_rater - ms_error) / (CASES * RATERS))
    row = mean_difference_one_sample(frame, margin=0.5, method="mixed").row(0, named=True)
    assert row["estimate"] == pytest.approx(grand, abs=1e-6)
    assert (row["ci_high"] - row["ci_low"]) / (2 * stats.norm.ppf(0.975)) == pytest.approx(
        se, rel=1e-4
    )
    assert "only the intercept fixed" in row["method"]


def test_a_fake_zero_arm_is_not_needed_and_would_overstate_the_evidence() -> None:
    # A workaround statisticians reach for: a reference arm of zeros in a two-arm mixed model. Its
    # standard error ignores the case and rater variance of the difference; the one-sample
    # model keeps it, so its interval is wider.
    from analysis.noninferiority import mean_difference

    frame = comparison_frame().filter(pl.col("item") == "completeness")
    zeros = frame.with_columns(pl.lit(0, dtype=pl.Int64).alias("value"))
    two_arm = pl.concat(
        [
            frame.with_columns(pl.lit("llm").alias("arm")),
            zeros.with_columns(pl.lit("ref").alias("arm")),
        ]
    )
    fake = mean_difference(two_arm, test="llm", reference="ref", margin=0.5, method="mixed")
    real = mean_difference_one_sample(frame, margin=0.5, method="mixed")
    width = lambda f: f["ci_high"][0] - f["ci_low"][0]  # noqa: E731
    assert width(real) > width(fake)


def test_one_sample_bootstrap_is_the_documented_two_way_resampling() -> None:
    # The vectorised bootstrap against the same draws written as plain loops (Owen 2007's
    # definition, conftest.pigeonhole_by_loop), the value set against a reference of 0 in the
    # same (case, rater) cell; percentile limits by numpy's inverted_cdf (Hyndman & Fan type 1),
    # as documented; exact up to 1e-12.
    frame = comparison_frame().filter(pl.col("item") == "correctness")
    frame = frame.filter(~((pl.col("case") == "q03") & (pl.col("rater") == "reader1")))
    as_two_arms = pl.concat(
        [
            frame.with_columns(pl.lit("llm").alias("arm")),
            frame.with_columns(
                pl.lit("doc").alias("arm"), pl.lit(0, dtype=pl.Int64).alias("value")
            ),
        ]
    )
    reps = pigeonhole_by_loop(as_two_arms, boot=300, seed=11)
    row = mean_difference_one_sample(frame, margin=0.5, method="bootstrap", boot=300, seed=11)
    assert row["ci_low"][0] == pytest.approx(
        np.quantile(reps, 0.025, method="inverted_cdf"), abs=1e-12
    )
    assert row["ci_high"][0] == pytest.approx(
        np.quantile(reps, 0.975, method="inverted_cdf"), abs=1e-12
    )
    assert row["p_value"][0] == pytest.approx(np.mean(reps <= -0.5), abs=1e-12)
    assert row["seed"][0] == 11


# --- the command line ---------------------------------------------------------------------------


def test_cli_one_sample_per_item_with_a_superiority_margin(comparisons: Path) -> None:
    rows = rows_of(
        "noninferiority", comparisons, "--one-sample", "--value", "value", "--margin", "0",
        "--method", "t", "--outcome", "continuous", "--by", "item", "--test", "llm",
        "--reference", "expert",
    )  # fmt: skip
    assert [r["item"] for r in rows] == ["completeness", "correctness", "conciseness"]
    frame = comparison_frame()
    for row in rows:
        d = case_means(frame.filter(pl.col("item") == row["item"]))
        assert row["estimate"] == pytest.approx(d.mean(), abs=1e-12)
        assert row["p_value"] == pytest.approx(
            stats.ttest_1samp(d, 0.0, alternative="greater").pvalue, abs=1e-12
        )
        assert row["design"] == "one-sample" and row["margin"] == 0
        assert row["h1"].startswith("H1: mean(llm - expert) > 0")


def test_cli_agreement_by_item_with_a_negative_scale_as_written(comparisons: Path) -> None:
    common = ("agreement", comparisons, "--unit", "case", "--level", "ordinal", "--boot", "0")
    by_item = rows_of(*common, "--scale", "-2,-1,0,1,2", "--by", "item")
    attached = rows_of(*common, "--scale=-2,-1,0,1,2", "--by", "item")
    assert by_item == attached
    alphas = {r["item"]: r["estimate"] for r in by_item if r["statistic"] == "krippendorff_alpha"}
    assert list(alphas) == ["completeness", "correctness", "conciseness"]
    # each item's alpha is the one computed on that item's rows alone
    for item, alpha in alphas.items():
        path = comparisons.with_name(f"{item}.csv")
        comparison_frame().filter(pl.col("item") == item).write_csv(path)
        alone = rows_of("agreement", path, "--unit", "case", "--level", "ordinal", "--boot", "0",
                        "--scale", "-2,-1,0,1,2")  # fmt: skip
        assert alpha == next(r["estimate"] for r in alone if r["statistic"] == "krippendorff_alpha")


def test_cli_by_reports_a_group_that_cannot_be_analysed(tmp_path: Path) -> None:
    frame = comparison_frame().filter(
        (pl.col("item") != "conciseness") | (pl.col("rater") == "reader0")
    )
    path = tmp_path / "uneven.csv"
    frame.write_csv(path)
    rows = rows_of(
        "agreement", path, "--unit", "case", "--level", "ordinal", "--boot", "0", "--by", "item"
    )
    lonely = [r for r in rows if r["item"] == "conciseness"]
    assert len(lonely) == 1 and lonely[0]["applicable"] is False
    assert "agreement needs at least two" in lonely[0]["note"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--one-sample", "--arm", "arm", "--method", "t", "--outcome", "continuous"],
         "--arm would be ignored: --one-sample reads one value per rating"),
        (["--one-sample", "--method", "tost", "--outcome", "continuous"],
         "--one-sample is for a continuous value"),
        (["--test", "a", "--reference", "b", "--method", "newcombe", "--outcome", "binary",
          "--boot", "500"], "--boot would be ignored: --method newcombe counts every rating"),
        (["--method", "t", "--outcome", "continuous"], "--test and --reference are required"),
        (["--one-sample", "--method", "t", "--outcome", "continuous", "--margin", "-0.5"],
         "--margin must be a positive number (or 0, a superiority test), got -0.5"),
    ],
)  # fmt: skip
def test_cli_refuses_options_a_method_would_ignore(comparisons: Path, extra, message) -> None:
    args = ["noninferiority", comparisons, *extra]
    if "--margin" not in extra:
        args += ["--margin", "0.5"]
    code, _, err = call(*args)
    assert code == 2 and message in err, err


def test_cli_agreement_refuses_a_seed_without_bootstrap(comparisons: Path) -> None:
    code, _, err = call("agreement", comparisons, "--unit", "case", "--level", "ordinal",
                        "--boot", "0", "--seed", "3")  # fmt: skip
    assert code == 2 and "--seed has no effect with --boot 0" in err


def test_cli_tost_with_a_case_column_is_paired_by_case(tmp_path: Path) -> None:
    frame = comparison_frame().filter(pl.col("item") == "completeness")
    two_arm = pl.concat(
        [
            frame.with_columns(pl.lit("llm").alias("arm"), (pl.col("value") + 3).alias("value")),
            frame.with_columns(
                pl.lit("doc").alias("arm"), pl.lit(3, dtype=pl.Int64).alias("value")
            ),
        ]
    )
    path = tmp_path / "two.csv"
    two_arm.write_csv(path)
    common = ("noninferiority", path, "--test", "llm", "--reference", "doc", "--margin", "1",
              "--outcome", "continuous", "--method", "tost")  # fmt: skip
    by_case = rows_of(*common, "--case", "case")[0]
    paired = rows_of(*common, "--pair", "case")[0]
    assert by_case["design"] == paired["design"] == "paired"
    assert by_case["estimate"] == paired["estimate"] and by_case["ci_low"] == paired["ci_low"]


def test_cli_describe_matches_numpy(comparisons: Path, tmp_path: Path) -> None:
    # Another package: numpy mean, std (ddof=1), median and percentile (method "linear", R's
    # default type 7, Hyndman & Fan 1996) per (item, rater); 1e-12.
    frame = comparison_frame().with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 0)
        .then(None)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    path = tmp_path / "with_missing.parquet"
    frame.write_parquet(path)
    code, out, err = call("describe", path, "--value", "value", "--arm", "rater", "--by", "item",
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["results"]
    assert len(rows) == 3 * RATERS
    for row in rows:
        part = frame.filter((pl.col("item") == row["item"]) & (pl.col("rater") == row["rater"]))
        x = part["value"].drop_nulls().to_numpy().astype(float)
        assert (row["n"], row["missing"]) == (len(x), part["value"].null_count())
        assert row["mean"] == pytest.approx(x.mean(), abs=1e-12)
        assert row["sd"] == pytest.approx(x.std(ddof=1), abs=1e-12)
        assert row["median"] == pytest.approx(np.median(x), abs=1e-12)
        assert (row["q1"], row["q3"]) == pytest.approx(
            tuple(np.percentile(x, [25, 75], method="linear")), abs=1e-12
        )
    code, table, _ = call("describe", path, "--value", "value", "--by", "item")
    assert code == 0 and table.splitlines()[0].split() == ["item", "n", "missing", "mean", "sd",
                                                          "median", "q1", "q3", "min", "max"]  # fmt: skip


def test_cli_table_leads_with_the_by_column(comparisons: Path) -> None:
    code, out, err = call("noninferiority", comparisons, "--one-sample", "--margin", "0",
                          "--method", "t", "--outcome", "continuous", "--by", "item",
                          "--rater", "rater")  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["#", "item", "statistic"]
    assert "n_raters=5" in out  # the rater column counts the raters, also for t
    assert "does not lie above 0;" in out or "lies above 0;" in out
