package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/sdkapi"
)

const companyUsage = `usage: kernel company create --name NAME [--data-dir DIR]   a company with its first API key
       kernel company list [--data-dir DIR]                  the companies
The kernel must be stopped: these open the data directory themselves.
`

func companyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		fmt.Fprint(stderr, companyUsage)
		return 2
	}
	fs := flag.NewFlagSet("kernel company "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := kernel.LoadConfig(fs, args[1:], os.Environ(), "name")
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "kernel company:", err)
		}
		return 2
	}
	k, err := kernel.Open(cfg, nil)
	if errors.Is(err, eventlog.ErrLocked) {
		fmt.Fprintf(stderr, "kernel company: the data directory %s is in use by a running kernel; stop it first\n", cfg.DataDir)
		return 3
	}
	if err != nil {
		fmt.Fprintln(stderr, "kernel company:", err)
		return 1
	}
	svc, err := sdkapi.New(k, cfg)
	if err != nil {
		k.Close(context.Background(), "company command failed")
		fmt.Fprintln(stderr, "kernel company:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() {
		cancel()
		<-done
		k.Close(context.Background(), "company command")
	}()
	if err := k.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "kernel company:", err)
		done <- nil
		return 1
	}
	go func() { done <- svc.Run(ctx) }() // ended by cancel above
	if err := svc.Dir.WaitFor(ctx, k.Log().Head()); err != nil {
		fmt.Fprintln(stderr, "kernel company:", err)
		return 1
	}
	if args[0] == "list" {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP_ID\tNAME\tREGION\tENVIRONMENT\tUSERS\tCREATED")
		for _, c := range svc.Dir.Companies() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", c.AppID, c.Name, c.Region, c.Environment, len(svc.Dir.Users(c.AppID)), c.CreatedAt.Format("2006-01-02 15:04"))
		}
		tw.Flush()
		return 0
	}
	name := fs.Lookup("name").Value.String()
	if name == "" {
		fmt.Fprintln(stderr, "kernel company create: --name is required")
		return 2
	}
	c, key, err := svc.CreateCompany(ctx, name)
	if err != nil {
		fmt.Fprintln(stderr, "kernel company create:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Created company %q. Keep these, the API key is not shown again:\n  app_id:  %s\n  apikey:  %s\n", c.Name, c.AppID, key)
	return 0
}
