"""Fixtures shared by test modules."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# One polars thread per test process, set before polars is imported (by support below): the suite runs two
# workers on two cores, and the test inputs are a few MB at most, so a second polars thread per worker bought
# no time but spent CPU waking up and waiting (the non-Spark tests, serially: 87-99 -> 84-90 CPU s, mostly system
# time, the same wall time). A run that sets POLARS_MAX_THREADS itself keeps its own value.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

import pytest

#: A throwaway anonymous-id key; tests that must not see it in any output compare against this value.
from support import TEST_KEY, convert, write_common_mapping

#: The xdist group of every test that uses the ``spark`` fixture: one worker runs them all, so the JVM and the
#: session start once per run (``--dist loadgroup`` in pyproject.toml hands out the largest group first).
SPARK_GROUP = "spark"
#: Modules whose tests take seconds each (processes killed and resumed, a 6,000-record reference validation, a
#: conversion per fixture): started first, so that no long test is left running alone at the end of a run.
START_FIRST = ("test_upload_kill.py", "test_records_agreement.py", "test_output_digest.py")


@pytest.fixture
def anonymous_key(monkeypatch):
    """Set LOGMAP_KEY (the HMAC key of the shipped mappings) for one test; modules opt in with
    ``pytestmark = pytest.mark.usefixtures("anonymous_key")``."""
    monkeypatch.setenv("LOGMAP_KEY", TEST_KEY)


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """``converted(inputs, mapping)``: the ``(result, output directory)`` of converting ``inputs`` with ``mapping``
    (a path), the tests' key and default options, done once per process for all the tests that check that same
    conversion (each would otherwise convert it again). The directory is shared: read it, never write into it;
    and call it before patching anything the run uses, or the patched run is what every later test gets."""
    done: dict[tuple[tuple[str, ...], str], tuple[object, Path]] = {}

    def convert_once(inputs: Sequence[str], mapping: str | Path) -> tuple[object, Path]:
        key = (tuple(inputs), str(mapping))
        if key not in done:
            out = tmp_path_factory.mktemp("converted") / "out"
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("LOGMAP_KEY", TEST_KEY)
                done[key] = (convert(list(inputs), mapping, out), out)
        return done[key]

    return convert_once


@pytest.fixture(scope="session")
def common_mapping(tmp_path_factory) -> Path:
    """The storefront mapping for NCSA common logs, one file for the session (so its conversions are shared)."""
    return write_common_mapping(tmp_path_factory.mktemp("mappings"))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test using the ``spark`` fixture, in any module, into one xdist group; the ``START_FIRST``
    modules' tests first, in that order (a stable sort: the same order on every worker, as xdist requires)."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(SPARK_GROUP))
    first = {name: position for position, name in enumerate(START_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))


def java_available() -> bool:
    """A Java runtime for Spark: ``java`` on the PATH or under JAVA_HOME."""
    import os
    import shutil

    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(home and os.path.exists(os.path.join(home, "bin", "java")))


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole test session (starting one costs seconds), with few shuffle
    partitions; every test using it runs on one xdist worker (``SPARK_GROUP``). Skipped, with a line saying why,
    when Java or pyspark is missing (``.ci/run`` installs both)."""
    if not java_available():
        pytest.skip("Spark tests skipped: no Java runtime (install openjdk-17-jre-headless; .ci/run does)")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.skip('Spark tests skipped: pyspark is not installed (pip install -e ".[spark]")')
    import os

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no reverse lookup of the machine's name
    session = (SparkSession.builder.master("local[2]").appName("logmap-tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.sql.adaptive.enabled", "false")
               # No generated code: nearly every query of the suite has schemas of its own (a mapping each), so
               # Janino would compile new classes for each, costing more than interpreting a few KB of rows
               # (the Spark tests: 102 -> 82 CPU s).
               .config("spark.sql.codegen.wholeStage", "false")
               .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
               .config("spark.ui.showConsoleProgress", "false")
               # The JIT's first tier only and one GC thread: the JVM lives a minute and runs short jobs on small
               # inputs, where the optimising compiler costs more CPU than it saves (14 rather than 25 CPU
               # seconds to start the session and run its first job).
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
