"""One module per subcommand; each has a Hydra ``main`` and a plain function that does the work."""
