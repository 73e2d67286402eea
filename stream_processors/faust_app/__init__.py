"""The faust app of a Driftline worker (``app``) and the aiokafka settings faust does not expose (``tuning``)."""

__all__: list[str] = []
