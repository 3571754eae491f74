-- ARGV: prefix, user. Returns how many tokens ended.
return end_tokens_in(P .. 'tokens:user:' .. ARGV[2])
