"""The `gotcha` command. Commands are thin: load config, call the library, print."""
