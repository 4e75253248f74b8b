import { Command } from 'commander';

const program = new Command('uproxy').description('Build and run a token-authenticated reverse proxy in front of a fleet');
program.parse();
