from twill.cli import main

main()
