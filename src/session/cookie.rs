//! Cookie codec (signed random ids); built with the stores issue.
