"""`python -m annkit …` is the same as `annkit …`."""

from annkit.cli import main

if __name__ == "__main__":
    main()
