// Bootstrap trimmed to the selectors our pages can use (scripts/build_assets.py runs PurgeCSS with
// this from the repository root). A class is kept when its name appears anywhere in the templates,
// our scripts and styles, or the Python code; the safelist keeps what Bootstrap's own JavaScript
// toggles and the classes templates compose from parts (`text-bg-{{ colour }}`).
module.exports = {
  content: ["templates/**/*.html", "static/js/**/*.js", "static/css/**/*.css", "market/**/*.py"],
  safelist: {
    standard: [
      // collapse, dropdown, alert, the product page's carousel: states set by bootstrap.bundle.js
      /^(show|showing|hiding|collapse|collapsing|collapsed|collapse-horizontal|fade|active|disabled)$/,
      /^carousel-item-(next|prev|start|end)$/,
      /^(slide|pointer-event)$/,
      /^drop(up|end|start|down)(-center)?$/,
      /^dropdown-menu/,
      // forms: validation states
      /^was-validated$/,
      /^is-(in)?valid$/,
      /^(in)?valid-(feedback|tooltip)$/,
      // components a page may start using with JavaScript alone
      /^modal/,
      /^offcanvas/,
      // composed in templates: alert-{{ category }}, text-bg-{{ colour }}, navbar-expand-{{ expand }},
      // my-{{ expand }}-0, me-{{ expand }}-2
      /^alert-/,
      /^text-bg-/,
      /^navbar-expand-/,
      /^(my|me)-(sm|md|lg|xl|xxl)-/,
    ],
    // Popper positions dropdowns through this attribute.
    greedy: [/data-bs-popper/],
  },
};
