package sdkapi

import (
	"html/template"
	"net/http"

	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/rest"
)

// linkPage is what a call link opens in a browser: the widget, configured
// for the link's company, joining the link's call. A link that does not
// verify gets a plain 404 page (the SDK would say invalid_token; a person
// who clicked a link needs words).
var linkPage = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Parley call</title>
<style>body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7}#status{padding:1rem;color:#444}</style>
</head>
<body>
<p id="status">Joining the call…</p>
<script src="/sdk/js/chat/latest/bandyer-widget.min.js"></script>
<script>
(async () => {
  const status = document.getElementById('status');
  try {
    const client = await BandyerSDK.configure({appId: {{.AppID}}, region: {{.Region}}, environment: {{.Environment}}});
    await client.joinCallURL(location.href);
    status.textContent = '';
  } catch (e) {
    status.textContent = 'This call could not be joined: ' + (e && (e.code || e.message) || e);
  }
})();
</script>
</body>
</html>
`))

// serveLinkPage answers GET /{region}/direct-rest-call-handler/{token}.
func (s *Service) serveLinkPage(w http.ResponseWriter, r *http.Request) {
	claims, err := s.Tokens.VerifyLink(r.PathValue("token"))
	var c directory.Company
	if err == nil {
		c, _ = s.Dir.Company(claims.AppID) // links carry their company's region
	}
	if err != nil || r.PathValue("region") != c.Region {
		http.Error(w, "This call link is not valid (it may have been disabled, or be for another server).", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL is the credential
	linkPage.Execute(w, map[string]string{"AppID": claims.AppID, "Region": c.Region, "Environment": c.Environment})
}

// linkPattern is the mux pattern of call links.
const linkPattern = "GET /{region}/" + rest.LinkPath + "/{token}"
