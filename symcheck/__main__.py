from symcheck.cli import main

main()
