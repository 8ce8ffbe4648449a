"""nbgrader settings for the kit's exercises: copy this file into your nbgrader course folder.

nbgrader stops a cell after ``Execute.timeout`` seconds (default 30). A challenge's check cell
trains the student's model for up to 30 s and then scores it, so it needs more than the default.
"""

c = get_config()  # noqa: F821 (nbgrader provides get_config)

c.Execute.timeout = 120
