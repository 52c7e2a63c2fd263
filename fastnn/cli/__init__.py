"""The ``fastnn`` command: its parser and commands (main.py), the training run with checkpoints
and signals (trainer.py, signals.py), options and TOML configs (config.py), and what it shows
(progress.py, report.py, show.py, plots.py, metrics_log.py)."""
