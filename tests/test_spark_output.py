"""The Spark engine's output at a Hadoop file system URL (`logmap.spark.output.HadoopOutputDir`) when copying the
finished run in fails: one OutputError line saying the directory holds no finished run, not a py4j traceback.
(The successful copy and the refusal of a non-empty directory: test_spark_logs.py.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(900)


def test_a_failure_while_copying_the_run_in_is_one_line_saying_it_is_not_a_finished_run(spark, tmp_path):
    from logmap.errors import OutputError
    from logmap.spark.output import HadoopOutputDir

    out = tmp_path / "out"
    output = HadoopOutputDir(spark, out.as_uri(), replace=False)  # through Hadoop's FileSystem, as s3a:// would be
    (output.staging / "interactions-00001.ndjson").write_text("{}\n")
    (output.staging / "report.json").write_text("{}\n")
    out.write_text("another job wrote a file where the directory was to be\n")
    with pytest.raises(OutputError) as raised:
        output.commit()
    message = str(raised.value)
    assert message.startswith(f"cannot write to {out.as_uri()}") and "it holds no report.json" in message
    assert "\n" not in message and "py4j" not in message and "An error occurred while calling" not in message
    output.discard()
    assert not output.staging.exists()
