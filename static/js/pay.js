// The card payment page (templates/payments/card.html). Stripe.js tokenises the card in the
// browser; our server attaches the token to the order's PaymentIntent and confirms it; a card
// that needs 3-D Secure is finished here with confirmCardPayment; then the server asks Stripe
// (never the browser) how it ended. Loaded as a file: the Content-Security-Policy forbids
// inline scripts.
(() => {
  "use strict";

  const form = document.getElementById("card-form");
  if (!form) return;

  const errors = document.getElementById("card-errors");
  const button = form.querySelector('button[type="submit"], button:not([type])');
  const csrf = document.querySelector('meta[name="csrf-token"]');
  // Messages of our own; a page may translate them with data-* attributes on the form.
  const text = {
    network: form.dataset.msgNetwork || "网络异常，请检查网络后重试",
    failed: form.dataset.msgFailed || "支付未成功，请换一张卡再试",
    unavailable: form.dataset.msgUnavailable || "支付组件加载失败，请刷新页面重试",
  };

  const showError = (message) => {
    errors.textContent = message || "";
  };
  const setBusy = (busy) => {
    if (!button) return;
    button.disabled = busy;
    button.setAttribute("aria-busy", String(busy));
  };

  if (typeof window.Stripe !== "function") {
    showError(text.unavailable);
    setBusy(true);
    return;
  }

  const stripe = window.Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  card.on("change", (event) => {
    if (event && event.error) showError(event.error.message);
    else if (event && event.complete) showError("");
  });

  // POST JSON to one of our endpoints; resolves to {ok, body}.
  const post = async (url, payload) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrf ? csrf.content : "",
      },
      body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => ({}));
    return { ok: response.ok, body };
  };

  let leaving = false;
  const finish = () => {
    leaving = true;
    window.location.assign(form.dataset.doneUrl);
  };

  // After the browser's part: the server settles from Stripe's truth.
  const refresh = async () => {
    const { ok, body } = await post(form.dataset.refreshUrl, {});
    return ok ? body.status : null;
  };

  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    setBusy(true);
    showError("");
    try {
      const tokenResult = await stripe.createToken(card);
      if (tokenResult.error) {
        showError(tokenResult.error.message || text.failed);
        return;
      }

      const { ok, body } = await post(form.dataset.confirmUrl, { token: tokenResult.token.id });
      if (!ok) {
        showError(body.message || text.failed);
        return;
      }
      if (body.status === "failed") {
        showError(body.message || text.failed);
        return;
      }
      if (!body.requires_action) {
        finish(); // succeeded, authorised, or still processing: the order page says which
        return;
      }

      // 3-D Secure: Stripe.js shows the bank's window (localstripe: its own modal).
      const action = await stripe.confirmCardPayment(body.client_secret || form.dataset.clientSecret);
      const status = await refresh().catch(() => null);
      if (status === "failed" || (action.error && status !== "succeeded" && status !== "authorized")) {
        showError((action.error && action.error.message) || text.failed);
        return;
      }
      finish(); // paid, or not known yet (the order page says which; Stripe's webhook follows)
    } catch (error) {
      showError(text.network);
    } finally {
      busy = false;
      if (!leaving) setBusy(false);
    }
  });
})();
