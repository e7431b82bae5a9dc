"""The one exception type for failures a user can cause (bad file, bad config, mismatched model)."""


class SpeechVQError(Exception):
    """An expected failure with a one-line message meant for the user.

    The CLI prints it as ``speechvq: error: <message>`` on stderr and exits with status 1;
    anything else that escapes is a bug and keeps its traceback.
    """


class ConfigError(SpeechVQError):
    """A configuration value, key, file or override that cannot be used."""
