// The status page at `/` of the admin endpoint (a fuller page comes with its own change).

enum StatusPage {
    static let html = """
        <!doctype html><html><head><meta charset="utf-8"><title>lbd</title></head>
        <body><h1>lbd</h1><p><a href="/v1/pools">/v1/pools</a> · <a href="/metrics">/metrics</a></p></body></html>
        """
}
