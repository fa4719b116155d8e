package dataset

import (
	"path/filepath"
	"reflect"
	"testing"
)

// groceryHeader is GroceryStore's dataset/classes.csv header.
const groceryHeader = "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str),Product Description Path (str)\n"

func TestLoadClassTable(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "dataset", "classes.csv")
	writeFile(t, table, groceryHeader+
		"Golden-Delicious,0,Apple,0,/iconic/Fruit/Apple/Golden_Iconic.jpg,/iconic/Fruit/Apple/Golden.txt\n"+
		"\"Oat, Milk\",7,Milk,3,iconic/Milk/oat.jpg,/d.txt\n")
	set, err := Load(table)
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != ClassTable || set.Format.String() != "class-table" {
		t.Errorf("format %v", set.Format)
	}
	base := filepath.Dir(table)
	want := []Item{
		// A leading '/' is the table's own directory, as GroceryStore writes it.
		{ID: "iconic/Fruit/Apple/Golden_Iconic.jpg", Path: filepath.Join(base, "iconic", "Fruit", "Apple", "Golden_Iconic.jpg"), Label: "0"},
		{ID: "iconic/Milk/oat.jpg", Path: filepath.Join(base, "iconic", "Milk", "oat.jpg"), Label: "7"},
	}
	if !reflect.DeepEqual(set.Items, want) {
		t.Errorf("items = %+v\nwant %+v", set.Items, want)
	}
	if err := set.CheckLabels(); err != nil {
		t.Error(err)
	}
}

func TestClassTableDetectedByHeader(t *testing.T) {
	dir := t.TempDir()
	// Not named .csv: the header decides.
	table := filepath.Join(dir, "catalogue.txt")
	writeFile(t, table, "image_path,label\nimgs/a.jpg,apple\nimgs/b.png,pear\n")
	set, err := Load(table)
	if err != nil {
		t.Fatal(err)
	}
	if set.Format != ClassTable || len(set.Items) != 2 || set.Items[1].Label != "pear" || set.Items[1].ID != "imgs/b.png" {
		t.Errorf("set = %v %+v", set.Format, set.Items)
	}
	// A manifest whose first path has a comma stays a manifest.
	man := filepath.Join(dir, "m.txt")
	writeFile(t, man, "a,b.jpg\t1\n")
	if set, err := Load(man); err != nil || set.Format != Manifest || set.Items[0].ID != "a,b.jpg" {
		t.Errorf("manifest with a comma: %v, %v", set, err)
	}
	// So does an unlabeled one whose first line is not a class-table header.
	man2 := filepath.Join(dir, "m2.txt")
	writeFile(t, man2, "x,1.jpg\n")
	if set, err := Load(man2); err != nil || set.Format != Manifest {
		t.Errorf("unlabeled manifest with a comma: %v, %v", set, err)
	}
}

func TestClassTableErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, text string
		subs       []string
	}{
		{"no class column", "name,path\nx,a.jpg\n", []string{"lacks a class column", `"name"`}},
		{"no image column", "Class ID (int),Class Name (str)\n1,x\n", []string{"lacks an image column", "Class ID (int)"}},
		{"neither", "a,b\n1,2\n", []string{"a class column", "and an image column"}},
		{"empty", "", []string{"empty class table"}},
		{"two image paths", "label,Iconic Image Path,Studio Image Path\n1,a.jpg,b.jpg\n", []string{"both look like the image path"}},
		{"escapes", "label,path\n1,ok.jpg\n2,../../etc/x.jpg\n", []string{"t.csv:3", "leads out of the class table's directory"}},
		{"escapes from root", "label,path\n1,/../x.jpg\n", []string{"t.csv:2", "leads out"}},
		{"empty label", "label,path\n,a.jpg\n", []string{"t.csv:2", `empty "label"`}},
		{"empty path", "label,path\n3,\n", []string{"t.csv:2", `class 3 has an empty "path"`}},
		{"short row", "label,path\n1,a.jpg\n2\n", []string{"t.csv", "wrong number of fields"}},
		{"duplicate image", "label,path\n1,a.jpg\n2,/a.jpg\n", []string{"duplicate ID", "t.csv:2", "t.csv:3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name, "t.csv")
			writeFile(t, p, c.text)
			_, err := Load(p)
			wantErr(t, err, c.subs...)
		})
	}
}

func TestClassTableDataRoot(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "shop", "classes.csv")
	writeFile(t, table, "label,path\n1,a.jpg\n")
	if _, err := LoadWith(table, Options{Root: filepath.Join(dir, "shop")}); err != nil {
		t.Errorf("inside the root: %v", err)
	}
	other := filepath.Join(dir, "other")
	touch(t, other, "x.jpg")
	_, err := LoadWith(table, Options{Root: other})
	wantErr(t, err, "classes.csv:2", "outside the data root")
}
