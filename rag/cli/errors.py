"""The edge where errors become exit codes: one line on stderr, ``rag: error: ...``, never a
traceback. Usage errors and the library's own errors exit with 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
from click.core import ParameterSource

from rag.cli.common import PROG

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def run(command: click.Command, argv: Sequence[str]) -> int:
    """Parse ``argv``, run the command it names and return the exit code."""
    from rag import terminal
    from rag.errors import RagError

    try:
        try:
            # make_context and invoke rather than click's main(): main() exits the process on
            # a broken pipe and prints usage blocks; here every outcome is an exit code.
            with command.make_context(PROG, list(argv)) as ctx:
                return int(command.invoke(ctx) or 0)
        except click.exceptions.Exit as exc:  # --help and --version end here
            return exc.exit_code
    except click.UsageError as exc:
        return fail(usage_message(exc), EXIT_USAGE)
    except RagError as exc:
        return fail(str(exc), EXIT_USAGE)
    except click.ClickException as exc:
        return fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) went away; say nothing more and let the shell carry on.
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return fail(terminal.settings_error(exc), EXIT_USAGE)
        raise


def usage_message(exc: click.UsageError) -> str:
    """A usage error as one line: which argument, what is wrong with it."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        message = "missing command"
    elif isinstance(exc, click.MissingParameter):
        message = exc.format_message()
    elif isinstance(exc, click.BadParameter):
        hint = _param_hint(exc)
        return f"argument {hint}: {exc.message}" if hint else exc.message
    else:
        message = exc.message
    # A command line of the wrong shape sends the user to the help page; a refused value or
    # combination (a plain UsageError) says all there is to say.
    if exc.ctx is None or type(exc) is click.UsageError:
        return message
    return f"{message} (see `{exc.ctx.command_path} --help`)"


def _param_hint(exc: click.BadParameter) -> str:
    """The flag (or argument) at fault, and the RAG_* variable when the value came from one."""
    if isinstance(exc.param_hint, str):
        return exc.param_hint
    param = exc.param
    if param is None:
        return ""
    hint = max(param.opts, key=len) if param.opts else (param.metavar or param.human_readable_name)
    ctx = exc.ctx
    envvar = getattr(param, "envvar", None)
    if ctx is not None and param.name and envvar:
        if ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
            hint += f" ({envvar})"
    return hint


def fail(message: str, code: int) -> int:
    """Print ``message`` as one error line and return ``code``."""
    # One line, so the message is never lost in a wrapped block or a traceback.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
