// The only dynamic part of this page: the server redirects to /login?error=1 after a bad key.
  if (new URLSearchParams(location.search).get("error")) {
    document.getElementById("error").hidden = false;
    var input = document.getElementById("api_key");
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "error");
  }
