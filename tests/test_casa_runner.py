"""CasaRunner: timeouts kill the whole process group, failures carry the log tail, Pipes brings metrics back."""

import time
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterInstance, Failure, MaterializeResult, asset, materialize

from contimg_resources import CasaRunner

pytestmark = pytest.mark.casa  # runs CASA/casacore child jobs or a Dagster instance: not in `make test-fast`

REPO = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def run_job(module, args, runner, layout):
    captured = {}

    @asset
    def job_asset(context: AssetExecutionContext, casa: CasaRunner):
        captured["result"] = casa.run(
            context,
            "unused",
            args,
            log_name="test-job",
            module=module,
            layout=layout,
            report_path=layout.scratch / "report.json",
        )
        return MaterializeResult()

    result = materialize(
        [job_asset], resources={"casa": runner}, instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    return result, captured.get("result")


@pytest.fixture
def child_env(layout, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the test jobs live under tests/
    return layout


def failure_text(result) -> str:
    events = [e for e in result.all_events if e.is_failure]
    return "\n".join(str(e.event_specific_data.error) for e in events if e.event_specific_data)


def test_hanging_child_and_grandchild_are_killed_at_the_timeout(child_env, tmp_path):
    pidfile = tmp_path / "pids"
    t0 = time.monotonic()
    result, _ = run_job("tests.jobs.hang", [pidfile], CasaRunner(timeout_s=3, kill_grace_s=2), child_env)
    assert not result.success
    assert time.monotonic() - t0 < 60
    child, grandchild = map(int, pidfile.read_text().split())
    for _ in range(20):
        if not alive(child) and not alive(grandchild):
            break
        time.sleep(0.2)
    assert not alive(child) and not alive(grandchild), "process group left behind"
    text = failure_text(result)
    assert "timed out after 3 s" in text and "now hanging" in text, text


def test_failing_child_raises_with_the_log_tail(child_env):
    result, _ = run_job("tests.jobs.fail", [], CasaRunner(timeout_s=60), child_env)
    assert not result.success
    text = failure_text(result)
    assert "exit status 3" in text and "the MS is all flagged" in text and "step 1 ok" in text
    assert (child_env.logs / "test-job.log").exists()


def test_metrics_come_back_through_pipes(child_env):
    result, metrics = run_job("tests.jobs.report", ["a", "b"], CasaRunner(timeout_s=60), child_env)
    assert result.success
    assert metrics["answer"] == 42 and metrics["args"] == ["a", "b"]
    assert Path(metrics["log_path"]).exists() and metrics["seconds"] > 0


def test_failure_is_retryable():
    err = Failure(description="x", allow_retries=True)
    assert err.allow_retries
