// Small behaviours shared by every page; no inline scripts, so the Content-Security-Policy can
// forbid them.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
