// stepgate portal: passkey ceremonies. No framework, no third-party request.
"use strict";
(function () {
  const me = document.currentScript;
  const page = me.dataset.page;
  const status = document.getElementById("status");
  // The JSON API sits beside the assets this script is served from.
  const api = new URL("../api/", me.src);

  function say(text, isError) {
    if (!status) return;
    status.textContent = text;
    status.className = isError ? "error" : "note";
    if (isError) status.setAttribute("role", "alert");
  }
  function b64urlToBuf(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const pad = b64.length % 4 ? "=".repeat(4 - (b64.length % 4)) : "";
    const bin = atob(b64 + pad);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  async function post(path, body) {
    const r = await fetch(new URL(path, api), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (!r.ok) {
      const err = new Error(data.message || ("The server answered " + r.status + "."));
      err.server = true;
      throw err;
    }
    return data;
  }
  function explain(e) {
    if (e && e.server) return e.message;
    switch (e && e.name) {
      case "NotAllowedError":
        return "The request was cancelled or timed out. If your authenticator cannot ask for a PIN or fingerprint, it cannot be used here.";
      case "InvalidStateError":
        return "This authenticator is already registered.";
      case "SecurityError":
        return "This page is not at the portal's address, so passkeys cannot be used here.";
      case "NotSupportedError":
        return "This browser or authenticator does not support what is needed (a passkey with PIN or fingerprint).";
      case "AbortError":
        return "The request was cancelled.";
      default:
        return "Something went wrong: " + ((e && e.message) || "unknown error") + ".";
    }
  }

  // --- registration ---
  async function enroll(ev) {
    ev.preventDefault();
    const label = document.getElementById("label").value.trim();
    say("Preparing…");
    let begun;
    try {
      begun = await post("enroll/begin", { token: me.dataset.token, label: label });
    } catch (e) { say(explain(e), true); return; }
    const pk = begun.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(c => { c.id = b64urlToBuf(c.id); });
    say("Follow your browser's prompt and confirm with your PIN or fingerprint.");
    let cred;
    try {
      cred = await navigator.credentials.create({ publicKey: pk });
    } catch (e) {
      post("enroll/cancel", { ceremony: begun.ceremony }).catch(() => {});
      say(explain(e), true);
      return;
    }
    const body = {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: bufToB64url(cred.response.attestationObject),
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
      extensions: {},
    };
    try {
      const done = await post("enroll/finish", { ceremony: begun.ceremony, credential: body });
      say("Passkey registered.");
      window.location.assign(done.redirect);
    } catch (e) { say(explain(e), true); }
  }

  // --- sign-in / step-up ---
  // Conditional UI (passkeys offered in the user-name field's autofill) runs
  // while nobody is signed in; pressing a button aborts it first.
  let conditional = null;
  function requestOptions(begun) {
    const pk = begun.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(c => { c.id = b64urlToBuf(c.id); });
    return pk;
  }
  async function stopConditional() {
    if (!conditional) return;
    const c = conditional;
    conditional = null;
    c.controller.abort();
    try { await c.done; } catch (e) { /* aborted */ }
  }
  async function startConditional() {
    if (me.dataset.user || !PublicKeyCredential.isConditionalMediationAvailable) return;
    let ok = false;
    try { ok = await PublicKeyCredential.isConditionalMediationAvailable(); } catch (e) { ok = false; }
    if (!ok) return;
    let begun;
    try {
      begun = await post("login/begin", { rd: me.dataset.rd, state: me.dataset.state, username: null });
    } catch (e) { return; }
    const controller = new AbortController();
    const done = navigator.credentials.get({
      publicKey: requestOptions(begun), mediation: "conditional", signal: controller.signal,
    });
    conditional = { controller: controller, done: done };
    let cred;
    try { cred = await done; } catch (e) { return; }
    conditional = null;
    await finishLogin(begun, cred);
  }
  async function signin(username) {
    await stopConditional();
    say("Preparing…");
    let begun;
    try {
      begun = await post("login/begin", { rd: me.dataset.rd, state: me.dataset.state, username: username || null });
    } catch (e) { say(explain(e), true); return; }
    const pk = requestOptions(begun);
    say("Follow your browser's prompt and confirm with your PIN or fingerprint.");
    let cred;
    try {
      cred = await navigator.credentials.get({ publicKey: pk });
    } catch (e) { say(explain(e), true); return; }
    await finishLogin(begun, cred);
  }
  // An assertion as the JSON API takes it.
  function assertionBody(cred) {
    return {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: bufToB64url(cred.response.authenticatorData),
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        signature: bufToB64url(cred.response.signature),
        userHandle: cred.response.userHandle ? bufToB64url(cred.response.userHandle) : null,
      },
      extensions: {},
    };
  }
  async function finishLogin(begun, cred) {
    const body = assertionBody(cred);
    try {
      const done = await post("login/finish", { ceremony: begun.ceremony, credential: body });
      say("Verified. Continuing…");
      window.location.assign(done.redirect);
    } catch (e) { say(explain(e), true); }
  }

  // --- client tokens (account page): a ceremony whose purpose is the mint ---
  async function mint(ev) {
    ev.preventDefault();
    const form = ev.target;
    const rules = Array.from(form.querySelectorAll("input[name=rule]:checked")).map(c => c.value);
    const request = {
      label: document.getElementById("token-label").value.trim(),
      rules: rules,
      days: parseInt(document.getElementById("token-days").value, 10),
    };
    say("Preparing…");
    let begun;
    try { begun = await post("tokens/begin", request); } catch (e) { say(explain(e), true); return; }
    say("Confirm with your passkey (PIN or fingerprint) to make the token.");
    let cred;
    try {
      cred = await navigator.credentials.get({ publicKey: requestOptions(begun) });
    } catch (e) { say(explain(e), true); return; }
    const body = assertionBody(cred);
    try {
      const done = await post("tokens/finish", { ceremony: begun.ceremony, credential: body });
      say("Token made; it expires " + done.expires + ".");
      const secret = document.getElementById("minted-secret");
      secret.value = done.token;
      document.getElementById("minted").hidden = false;
      secret.select();
    } catch (e) { say(explain(e), true); }
  }

  if (page === "account") {
    const form = document.getElementById("mint");
    if (form && window.PublicKeyCredential) form.addEventListener("submit", mint);
    return;
  }
  if (!window.PublicKeyCredential) {
    say("This browser does not support passkeys.", true);
    return;
  }
  if (page === "enroll") {
    document.getElementById("enroll").addEventListener("submit", enroll);
  } else if (page === "login") {
    document.getElementById("signin").addEventListener("click", () => signin(null));
    document.getElementById("signin-name").addEventListener("submit", ev => {
      ev.preventDefault();
      signin(document.getElementById("username").value.trim());
    });
    startConditional();
  }
})();
