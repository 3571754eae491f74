-- ARGV: prefix, portal session id.
return end_portal(ARGV[2])
