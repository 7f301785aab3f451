-- The minimum-duration filter of the portal's panel and the API (issue 10) when few
-- recordings last that long: the search counts and reads them from this index and sorts them,
-- instead of walking the site's time index to the end to fill a page (`min_duration=3600` on
-- the benchmark's million recordings, none of them that long: 0.4–2.6 s). `search.rs` chooses
-- between the two.
CREATE INDEX recordings_site_duration ON recordings (site_id, duration_ms);
