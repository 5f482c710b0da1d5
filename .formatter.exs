[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,demo,bench}/**/*.{ex,exs}"]
]
