"""Sphinx configuration of the course book (``make book``; see tlhelpers/book.py).

Why Sphinx + MyST-NB + sphinx-book-theme: they are pure Python (pip-installable next to the
kit, no Node or LaTeX), the standard tooling of the Jupyter ecosystem (Jupyter Book 1 is
built on exactly these three), and MyST-NB renders notebooks that are already executed
(``nb_execution_mode = "off"``), so the book shows what ``make run`` computed and never runs
a notebook again. MathJax 2 comes from the installed ``jupyter-server-mathjax`` package and is
copied into the site (``_static/mathjax``): pages render offline, formulas included.
"""

project = "Transfer learning, seen through the loss function"
author = "the kit's authors"
extensions = ["myst_nb", "sphinx.ext.mathjax"]
exclude_patterns = ["files/**", "_build", "**.ipynb_checkpoints"]

# MyST-NB: show the executed outputs as they are; never execute.
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for the printed verdicts
nb_output_stderr = "show"
nb_ipywidgets_js = {}  # no widget state is saved (TLHELPERS_WIDGETS=0); no require.js CDN
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Offline MathJax 2.7 (the file the jupyter-server-mathjax package ships), relative to _static.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
        # MyST marks page bodies mathjax_ignore and formulas "math" (MathJax 3 options);
        # the same rule in MathJax 2's terms:
        "ignoreClass": "tex2jax_ignore|mathjax_ignore",
        "processClass": "tex2jax_process|mathjax_process|math|output_area",
    },
    # The package ships the STIX-Web fonts only: no local-font probing, no image fonts.
    # Its blank test font points at about:blank, which Chromium refuses (a console error);
    # a local() source is never fetched.
    "HTML-CSS": {
        "availableFonts": [],
        "imageFont": None,
        "preferredFont": None,
        "webFont": "STIX-Web",
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },  # fmt: skip
    # HTML-CSS in every browser: native MathML output would ask for TeX .otf fonts the
    # package does not ship (404s), and a preview pass is not needed for short pages.
    "MMLorHTML": {"prefer": "HTML"},
    "menuSettings": {"CHTMLpreview": False},
    # The hidden MathML kept for screen readers declares TeX .otf fonts that are not
    # shipped either; local() sources are never fetched.
    "NativeMML": {
        "styles": {
            f"@font-face /*{i}*/": {"font-family": name, "src": "local('MathJax_Blank')"}
            for i, name in enumerate(
                [
                    "MathJax_Caligraphic-WEB",
                    "MathJax_Caligraphic-WEB",
                    "MathJax_AMS-WEB",
                    "MathJax_Script-WEB",
                    "MathJax_Fraktur-WEB",
                    "MathJax_Fraktur-WEB",
                ],
                start=1,
            )
        }
    },
    "showMathMenu": False,
}

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["book.css"]  # book/book.css
html_context = {"default_mode": "light"}  # else the theme logs "invalid theme mode" at first visit
html_favicon = "_static/favicon.svg"  # else browsers ask for /favicon.ico (a 404)
html_copy_source = False  # each chapter links its own notebook downloads
html_show_sourcelink = False
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
}
