"""The same mapping on Apache Spark: ``convert_spark(spark, inputs, mapping, out)`` (``logmap convert --engine spark``).

How the two phases map onto Spark is told in :mod:`logmap.spark.engine` and docs/spark.md.
"""

from logmap.spark.engine import convert_spark, spark_session, transport_dtype

__all__ = ["convert_spark", "spark_session", "transport_dtype"]
