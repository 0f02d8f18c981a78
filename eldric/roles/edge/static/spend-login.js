// The sign-in's only dynamic parts: /dashboard/login?error=1 after a bad key, and an edge
// without --admin-key (body data-closed), where no key can pass: the form goes away.
(function () {
  "use strict";
  var input = document.getElementById("admin_key");
  if (document.body.hasAttribute("data-closed")) {
    document.getElementById("closed").hidden = false;
    document.getElementById("login-form").hidden = true;
  } else if (new URLSearchParams(location.search).get("error")) {
    document.getElementById("error").hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "error");
  }
})();
