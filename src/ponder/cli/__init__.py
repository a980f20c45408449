"""The `ponder` command line: one module per command, what they share in `common`.

Every error a user can cause is one line on stderr with exit status 2: a `PonderError`, and
every usage error (an unknown option or command, a missing argument, a value of the wrong
type, no command at all). Ctrl-C stops the work and exits 130. Nothing imports this package.
"""

from __future__ import annotations

import re
import signal
import sys

import typer

from ponder.cli.bank import bank
from ponder.cli.common import err_console
from ponder.cli.eval import eval_
from ponder.cli.generate import generate
from ponder.cli.models import models
from ponder.cli.serve import serve
from ponder.cli.solve import solve
from ponder.cli.strategies import strategies
from ponder.cli.tune import tune_
from ponder.errors import PonderError

app = typer.Typer(
    name="ponder",
    help="Turn inference-time compute into better answers, and measure by how much.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command, name in (
    (solve, "solve"),
    (generate, "generate"),
    (eval_, "eval"),
    (tune_, "tune"),
    (serve, "serve"),
    (strategies, "strategies"),
    (models, "models"),
):
    app.command(name)(command)
app.add_typer(bank, name="bank")

COMMANDS = ("solve", "generate", "eval", "tune", "serve", "strategies", "models", "bank")


def _fail(message: str, status: int = 2) -> None:
    line = re.sub(r"\s+", " ", message).strip()
    err_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    raise SystemExit(status)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # asyncio.run answers a first Ctrl-C with Python's default handler by cancelling its main
    # task and waiting for it to end, and a long evaluation could go on decoding after that;
    # a handler of ponder's own raises at once wherever the main thread is
    signal.signal(signal.SIGINT, _interrupt)
    if not args:
        _fail(f"no command given; commands: {', '.join(COMMANDS)} (ponder --help tells more)")
    try:
        # outside standalone mode typer returns the exit status it would have exited with
        # (130 for a Ctrl-C it caught) instead of exiting
        status = app(args=args, standalone_mode=False, prog_name="ponder")
    except PonderError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err_console.print("interrupted", markup=False)
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # usage errors of the parser typer ships
        if type(exc).__name__ == "Abort":
            err_console.print("interrupted", markup=False)
            raise SystemExit(130) from None
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        # a command group called without its command has just printed its help
        _fail(message or "missing command (its help is above)")
    if status == 130:
        err_console.print("interrupted", markup=False)
    if isinstance(status, int) and status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
