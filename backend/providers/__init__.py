"""Provider ports and their adapters: the only code that imports hvac, PyGithub or kubernetes."""
