"""Subcommands of ``bayes-router``; see :mod:`bayes_router.cli`."""

from __future__ import annotations


def split_names(value: str | None, what: str) -> list[str] | None:
    """A comma-separated option value as a list of names (None when the option was not given);
    an empty list is refused, naming the option ``what``."""
    from bayes_router.errors import InputError

    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise InputError(f"{what}: no names given")
    return names


def add_sampler_arguments(p, chains_default: str) -> None:
    """--sampler, --draws, --tune, --chains and --config: the reliability fits' settings, as ``fit`` and
    ``evaluate`` take them. ``chains_default``: the help's words for the default number of chains."""
    from bayes_router.models.reliability import SAMPLERS

    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="sampler of the reliability fits: NUTS via nutpie (default), PyMC or NumPyro (JAX); "
                        "or ADVI (approximate)")
    p.add_argument("--draws", type=int, default=None,
                   help="posterior draws per chain (default: 4000 in total, i.e. 2000 per chain with 2 chains)")
    p.add_argument("--tune", type=int, default=None, help="tuning steps per chain (default 1000)")
    p.add_argument("--chains", type=int, default=None, help=f"chains (default: {chains_default})")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="YAML or JSON file with the reliability model's model_config (priors: dist and "
                        "parameters; parameterization per effect; family) and sampler_config (sampler, draws, "
                        "tune, chains, cores, target_accept, max_log_likelihood_cells, advi_iterations, "
                        "length_bin); --sampler/--draws/--tune/--chains given on the command line win")
