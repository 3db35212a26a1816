"""Parts the study drivers (experiments/mini_if, experiments/smol_ifeval) share."""
