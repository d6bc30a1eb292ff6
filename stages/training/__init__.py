"""The training machinery every model family shares: the task protocol (`task`), the loop
(`loop`), distributed set-up and stop requests (`distributed`), checkpoints (`checkpoints`)
and the optimizer and learning-rate schedules (`schedules`). `python -m stages.train` is the CLI.
"""
