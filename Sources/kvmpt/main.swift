print("kvmpt: under construction")
