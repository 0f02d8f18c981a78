from eldric.cli import main

main()
