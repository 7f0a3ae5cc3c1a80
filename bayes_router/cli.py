"""``bayes-router``: the command line. One module per subcommand in :mod:`bayes_router.commands`.

Each command module defines ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``; heavy libraries are imported
inside ``run`` so ``--help`` stays fast. Errors a user can cause are raised as
:class:`~bayes_router.errors.BayesRouterError` and printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from bayes_router.errors import BayesRouterError

COMMANDS: dict[str, str] = {
    "import-mmlu-pro": "bayes_router.commands.import_mmlu_pro",
    "download-mmlu-pro": "bayes_router.commands.download_mmlu_pro",
    "import-calibration-study": "bayes_router.commands.import_calibration_study",
    "download-calibration-study": "bayes_router.commands.download_calibration_study",
    "fit": "bayes_router.commands.fit",
    "evaluate": "bayes_router.commands.evaluate",
    "trust": "bayes_router.commands.trust",
    "bench": "bayes_router.commands.bench",
    "online": "bayes_router.commands.online",
    "collect": "bayes_router.commands.collect",
    "export": "bayes_router.commands.export",
    "replay-server": "bayes_router.commands.replay_server",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayes-router",
        description="Bayesian routing between LLMs of different price and skill: import call logs, "
        "fit reliability models, evaluate routing policies, learn trust in routers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command whose module is not in this build
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _format_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        return int(args._run(args) or 0)
    except BayesRouterError as exc:
        print(f"bayes-router {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written (permissions, a folder, a full disk)
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"bayes-router {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayes-router {args.command}: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
