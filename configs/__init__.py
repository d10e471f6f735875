"""annkit's Hydra configs. This folder ships inside the wheel as the package annkit.configs,
which every subcommand reads through ``pkg://annkit.configs``; the file exists so that
importlib.resources (and Hydra's pkg:// source) see a package."""
