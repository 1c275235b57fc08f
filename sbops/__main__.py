from sbops.cli import main

main()
