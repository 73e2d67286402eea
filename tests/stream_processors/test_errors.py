"""One exception tree: every exception class Driftline defines is a DriftlineError, and the tree is documented."""

import importlib
import inspect
import pkgutil

import detectors
import producers
import stream_processors
import stream_processors.errors
from stream_processors.errors import DriftlineError, KafkaUnreachable, ReplayError, ServiceUnavailable

OUTSIDE_THE_TREE = {"StateVersionError", "ValueOutOfRange"}
"""detectors imports nothing of Driftline's; ValueOutOfRange never leaves the module that raises it."""


def _exception_classes():
    for package in (detectors, producers, stream_processors):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _name, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                    yield cls


def test_every_exception_of_driftline_is_in_the_tree():
    found = list(_exception_classes())
    assert len(found) >= 8
    outside = {cls.__name__ for cls in found if not issubclass(cls, DriftlineError)}
    assert outside == OUTSIDE_THE_TREE


def test_the_tree_is_documented():
    doc = stream_processors.errors.__doc__
    for cls in _exception_classes():
        if issubclass(cls, DriftlineError):
            assert cls.__name__ in doc, cls
    for name in OUTSIDE_THE_TREE - {"ValueOutOfRange"}:
        assert name in doc


def test_service_errors_are_caught_as_one():
    assert issubclass(KafkaUnreachable, ServiceUnavailable) and issubclass(ReplayError, DriftlineError)
    from producers.replay import ReplayError as replay_error
    assert replay_error is ReplayError
