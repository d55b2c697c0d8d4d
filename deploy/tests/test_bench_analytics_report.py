"""`make bench-analytics` rewrites only its own part of docs/bench-analytics.md: the sections the team wrote around
the last run (each change's before/after) stay; a bench's work directory goes, but for a failed run's logs."""

import pytest

from deploy.bench.analytics import RUN_BEGIN, RUN_END, with_run
from deploy.bench.workdirs import bench_workdir


def test_a_run_replaces_only_the_last_run_between_the_marks() -> None:
    document = f"{RUN_BEGIN}\n# old run\n{RUN_END}\n\n## Written by hand\nkept\n"

    updated = with_run(document, "# new run\n")

    assert updated == f"{RUN_BEGIN}\n# new run\n{RUN_END}\n\n## Written by hand\nkept\n"


def test_text_before_the_marks_is_kept_too() -> None:
    document = f"intro\n{RUN_BEGIN}\nold\n{RUN_END}\n"

    assert with_run(document, "new") == f"intro\n{RUN_BEGIN}\nnew\n{RUN_END}\n"


def test_a_document_without_marks_keeps_what_it_had_below_the_run() -> None:
    updated = with_run("## Written by hand\n", "# run")

    assert updated == f"{RUN_BEGIN}\n# run\n{RUN_END}\n\n## Written by hand\n"
    assert with_run(updated, "# second run") == f"{RUN_BEGIN}\n# second run\n{RUN_END}\n\n## Written by hand\n"


def test_a_new_document_is_the_run_alone() -> None:
    assert with_run("", "# run") == f"{RUN_BEGIN}\n# run\n{RUN_END}\n"


def test_an_end_mark_before_the_begin_mark_is_not_taken_for_the_run() -> None:
    document = f"{RUN_END}\nnotes\n{RUN_BEGIN}\n"

    assert with_run(document, "# run") == f"{RUN_BEGIN}\n# run\n{RUN_END}\n\n{document}"


def test_a_failed_bench_keeps_its_services_logs_and_drops_the_bulk(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RuntimeError), bench_workdir(work):
        (work / "kafka").mkdir()
        (work / "kafka" / "segment.log").write_text("x")
        (work / "analytics-8005.duckdb").write_text("x")
        (work / "analytics-8005.log").write_text("why it failed")
        raise RuntimeError("analytics exited; see analytics-8005.log")

    assert sorted(p.name for p in work.iterdir()) == ["analytics-8005.log"]


def test_a_bench_that_succeeds_leaves_no_work_directory(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with bench_workdir(work):
        (work / "analytics-8005.log").write_text("fine")

    assert not work.exists()
