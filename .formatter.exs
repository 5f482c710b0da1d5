[
  inputs: ["{mix,.formatter}.exs", "mix/**/*.exs", "{config,lib,test,demo,bench}/**/*.{ex,exs}"]
]
