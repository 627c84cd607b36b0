// MathJax 3 configuration for pymdownx.arithmatex (generic mode): arithmatex wraps every
// formula (from Markdown pages and from docstrings rendered by mkdocstrings) in an element of
// class "arithmatex" holding \( ... \) or \[ ... \]; MathJax typesets only those elements.
// MathJax itself is vendored (javascripts/mathjax/, Apache-2.0, from the npm package
// mathjax@3.2.2): the site needs no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
};

// Material's document$ observable fires on every page load (and on instant navigation):
// typeset the new content once MathJax has started (the SVG output has no font cache to clear).
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise && MathJax.typesetPromise) {
      MathJax.startup.promise = MathJax.startup.promise.then(() => {
        MathJax.typesetClear();
        MathJax.texReset();
        return MathJax.typesetPromise();
      });
    }
  });
}
