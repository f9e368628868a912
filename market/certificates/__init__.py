"""Co-ops' certificates (证书: 地理标志, 绿色食品, 有机, 富硒, 食品经营许可 ...) and what the
storefront shows of them (issue 16): a co-op uploads one with its number, issuer, end of
validity and a scan; an organizer verifies or rejects it (audited, the co-op told); a verified
certificate shows as a badge on the products it covers until its last day of validity, and the
storefront filters by it.

Expiry needs nothing to run: validity is read against market.clock.today() whenever a page is
drawn, and the page cache keys every stored page by the Beijing day (market/pagecache/pages.py),
so a badge is gone from every page on the day after `valid_until`."""
