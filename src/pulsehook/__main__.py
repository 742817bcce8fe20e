from pulsehook.cli import main

main()
