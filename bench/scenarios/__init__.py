"""The benchmark scenarios, one module each; every ``run(ctx)`` returns a dict of figures."""
