from permanence.cli import main

main()
