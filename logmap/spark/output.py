"""The Spark engine's output directory on a Hadoop file system (``s3a://``, ``gs://``, ``abfs://``, ``hdfs://``…).

The driver builds the run's files in a local staging directory, as for a local output, and copies them into place
through Hadoop's ``FileSystem`` (the cluster's own configuration and credentials, whatever scheme it has jars
for) only when the run has succeeded: the batch files and ``rejects.ndjson`` first, ``report.json`` last, so that a
directory with a ``report.json`` holds a finished run, as locally. An object store has no atomic rename of a
directory, so a reader may see new batch files before the report: wait for ``report.json``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logmap.errors import OutputError
from logmap.sinks.output import OWN_PATTERNS, REPORT_NAME, OutputDir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class HadoopOutputDir(OutputDir):
    """:class:`OutputDir` at a Hadoop file system URL, staged on the driver's local disk.

    ``path`` is the URL as a ``Path`` (only its file names are used, in the report): ``url`` is the URL itself.
    """

    def __init__(self, spark: SparkSession, url: str, *, replace: bool, refuse_hint: str = "pass --overwrite") -> None:
        self.url = url.rstrip("/")
        self.path = Path(self.url)
        jvm = spark._jvm
        assert jvm is not None
        self._hadoop_path = jvm.org.apache.hadoop.fs.Path
        self._directory: Any = self._hadoop_path(self.url)
        try:
            self._fs: Any = self._directory.getFileSystem(spark._jsc.hadoopConfiguration())
            if self._fs.exists(self._directory):
                if not self._fs.getFileStatus(self._directory).isDirectory():
                    raise OutputError(f"{self.url} exists and is not a directory")
                if len(self._fs.listStatus(self._directory)) and not replace:
                    raise OutputError(f"output directory {self.url} is not empty; choose another or {refuse_hint}")
        except OutputError:
            raise
        except Exception as error:  # a py4j error: no file system for the scheme, no access
            raise OutputError(f"cannot write to {self.url}: {_java_message(error)}") from None
        self.staging = Path(tempfile.mkdtemp(prefix="logmap-output-"))

    def commit(self) -> list[Path]:
        """Copy the staged files in, after removing the run's own older files, ``report.json`` first removed and
        last written."""
        try:
            fs, directory = self._fs, self._directory
            fs.mkdirs(directory)
            fs.delete(self._hadoop_path(directory, REPORT_NAME), False)  # from here on it holds no finished run
            for pattern in OWN_PATTERNS:
                for old in fs.globStatus(self._hadoop_path(directory, pattern)) or []:
                    fs.delete(old.getPath(), False)
            names = sorted(p.name for p in self.staging.iterdir())
            for name in [n for n in names if n != REPORT_NAME] + [n for n in names if n == REPORT_NAME]:
                local = self._hadoop_path((self.staging / name).absolute().as_uri())
                fs.copyFromLocalFile(True, True, local, self._hadoop_path(directory, name))
        except Exception as error:  # a py4j error mid-copy (access refused, the store unreachable)
            raise OutputError(f"cannot write to {self.url}: {_java_message(error)} (it holds no report.json: "
                              "not a finished run; run again)") from None
        self.discard()
        return [self.path / n for n in names]

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _java_message(error: Exception) -> str:
    """The Java exception's own message behind a py4j error ("…UnsupportedFileSystemException: No FileSystem for
    scheme "s3a""), not py4j's "An error occurred while calling o42.getFileSystem"."""
    java = getattr(error, "java_exception", None)
    return str(java.toString()) if java is not None else str(error).strip().splitlines()[0]
