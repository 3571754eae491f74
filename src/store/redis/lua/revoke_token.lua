-- ARGV: prefix, token id.
return end_token(ARGV[2])
