"""Running steps: the result protocol, the dispatcher, the step runner, the pipeline."""
