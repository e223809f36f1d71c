from creditsim.cli import main

main()
