"""Errors reach the terminal as one line, whatever names they quote."""

from stream_processors import cli
from stream_processors.errors import UnknownModel


def test_an_error_quoting_a_name_with_control_characters_prints_it_escaped(monkeypatch, capsys):
    class Failing:
        @staticmethod
        def run(args, settings):
            raise UnknownModel("unknown model '\x1b[1A\x1b[2K\rDECISION: CONTINUE\n'")

    real = cli._command
    monkeypatch.setattr(cli, "_command", lambda name: real(name) if name != "status" else Failing)
    Failing.add_parser = staticmethod(real("status").add_parser)
    assert cli.main(["status", "--model", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\x1b[1A" in err and "\\rDECISION" in err
