"""Knowledge routing: the prompt's theme picks the workers tagged theme:<id>
(setup.install() puts it in the router)."""
