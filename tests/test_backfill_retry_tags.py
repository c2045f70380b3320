"""The tags of a backfill run's retry (sensors/backfill_retry_sensor.py): what is kept, dropped and counted.

The sensor itself runs in the cluster's kill drill (tests/test_cluster.py), on a real daemon.
"""

from sensors.backfill_retry_sensor import retry_tags


def test_a_retry_keeps_the_submission_drops_dagsters_bookkeeping_and_counts_the_attempt():
    failed = {
        "dagster/backfill": "abcdefgh",
        "dagster/partition": "2026-01-25T00:05",
        "dagster/failure_reason": "RUN_WORKER_FAILURE",
        "dagster/will_retry": "true",
        "dagster/priority": "1",
        "dagster/max_retries": "2",
        "contimg/reprocess": "cli",
        "contimg/submission": "f00",
    }
    tags = retry_tags(failed, "run-1")
    # the partition travels as the RunRequest's partition_key; a backfill tag would make Dagster skip it again
    assert tags == {
        "dagster/priority": "1",
        "dagster/max_retries": "2",
        "contimg/reprocess": "cli",
        "contimg/submission": "f00",
        "dagster/retry_number": "1",
        "contimg/retry_of": "run-1",
    }
    assert retry_tags({**failed, "dagster/retry_number": "1"}, "run-2")["dagster/retry_number"] == "2"
